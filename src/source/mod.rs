//! Sources: turn input into typed [`crate::event::Event`]s. They never see the store or views.

pub mod discovery;
pub mod followed;
pub mod formats;
pub mod framer;
pub mod identity;
pub mod parallel;
pub mod resume;
pub mod silence;
pub mod tailer;
pub mod wakeup;
