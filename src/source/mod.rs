//! Sources: turn input into typed [`crate::event::Event`]s. They never see the store or views.

pub mod discovery;
pub mod formats;
pub mod framer;
pub mod silence;
pub mod tailer;
