//! Record formats, one module per layout. Adding a format is one new module plus one
//! line in [`ALL`].

mod audit;
pub mod jackson;
pub mod jans_audit_json;
pub mod jans_audit_text;
pub mod jans_server_text;
mod server;

pub use audit::parse_audit_record;
pub use server::{parse_server_message, AUTHENTICATOR};

use crate::event::{Event, FormatId, MalformedReason};

/// What the bytes at the start of a line are.
#[derive(Debug, PartialEq, Eq)]
pub enum LineStart {
    /// Not enough bytes yet to tell.
    NeedMore,
    /// Not a record start.
    NotAStart,
    /// A record starts here; its JSON body opens `body_at` bytes into the line.
    Start { body_at: usize },
    /// A record header without a JSON body (malformed).
    StartWithoutBody,
    /// A whole one-line record (a server-log event). The lines after it that start no
    /// record (a stack trace) belong to it and are skipped silently.
    Line,
}

/// A record layout: where records start and how a whole record is parsed.
pub trait RecordFormat: Sync {
    /// Label value, and the `logs.format` config spelling.
    fn name(&self) -> &'static str;
    /// Whether a file whose first non-blank line starts with `line` uses this layout.
    fn detect(&self, line: &[u8]) -> bool;
    /// Whether a line starting with `first` could start a record (a cheap pre-check).
    fn may_start(&self, first: u8) -> bool;
    /// Classifies the bytes at a line start. `line` runs to the newline (excluded) or to
    /// the end of the data read so far; `complete` says which.
    fn line_start(&self, line: &[u8], complete: bool) -> LineStart;
    /// Parses one whole record: `record` spans its first line's start to the closing
    /// brace of its JSON body, which opens at `body_at`; for a [`LineStart::Line`]
    /// record, the line without its newline (`body_at` 0).
    fn parse(
        &self,
        record: &[u8],
        body_at: usize,
        format: FormatId,
    ) -> Result<Event, MalformedReason>;
    /// Reads the record starting at `rest` (a line start whose line is complete, its
    /// first `line_len` bytes before the newline) in one pass when it has exactly the
    /// shape upstream writes: the event and the record's length to its closing brace,
    /// both exactly what [`line_start`](Self::line_start) and [`parse`](Self::parse)
    /// would make of it. `None` leaves it to them.
    fn read_whole(
        &self,
        _rest: &[u8],
        _line_len: usize,
        _format: FormatId,
    ) -> Option<(Event, usize)> {
        None
    }
}

/// How many formats are registered.
pub const COUNT: usize = 3;

/// Every registered format, in detection order (the audit text layout before the
/// server log's, which shares its timestamp but has no JSON body).
pub static ALL: [&dyn RecordFormat; COUNT] = [
    &jans_audit_text::JansAuditText,
    &jans_audit_json::JansAuditJson,
    &jans_server_text::JansServerText,
];

pub fn by_id(id: FormatId) -> &'static dyn RecordFormat {
    ALL[id as usize]
}

pub fn id_of(name: &str) -> Option<FormatId> {
    ALL.iter()
        .position(|f| f.name() == name)
        .map(|i| i as FormatId)
}

/// Label value for a possibly undetected format.
pub fn label(id: Option<FormatId>) -> &'static str {
    id.map_or("unknown", |i| by_id(i).name())
}

/// The first registered format that recognises `line`.
pub fn detect(line: &[u8]) -> Option<FormatId> {
    ALL.iter()
        .position(|f| f.detect(line))
        .map(|i| i as FormatId)
}
