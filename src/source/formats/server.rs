//! The auth server's own log (reference §1b), shared by both layouts: the level of
//! every event, and the authentication outcome of the Authenticator's lines.

use crate::event::{
    AuthKind, Authentication, FormatId, LineTime, LogLevel, ServerLogEvent, UserKey,
};

/// The logger whose INFO lines report logins (`%C{6}` prints it whole).
pub const AUTHENTICATOR: &str = "io.jans.as.server.auth.Authenticator";

/// Suffixes the current builds append to a failed interactive login's username.
const FAILURE_SUFFIXES: [&str; 2] = [
    ". Custom script returned false for authenticate method.",
    ". Failed to find session.",
];

/// A server-log event from its parts; `logger` and `message` are read, never kept.
pub fn parse_server_message(
    format: FormatId,
    level: LogLevel,
    time: LineTime,
    logger: &str,
    message: &str,
) -> ServerLogEvent {
    let authentication = if logger == AUTHENTICATOR {
        parse_authentication(message)
    } else {
        None
    };
    ServerLogEvent {
        format,
        level,
        time,
        authentication,
    }
}

/// `'name'` → `name`: the quoted forms end the line with the closing quote.
fn quoted(rest: &str) -> Option<&str> {
    rest.strip_prefix('\'')?.strip_suffix('\'')
}

/// Reads one Authenticator message. The wordings (reference §1b):
/// - `Authentication success for User: '<uid>'`: an interactive login succeeded;
/// - `Authentication failed for user: <uid>[. <why>]`: an interactive login failed;
/// - `Authentication failed for User: '<name>'`: a non-interactive service check failed;
/// - `Authentication success for Client: '<id>'`: client authentication;
/// - `Authentication failed for '<name>'`: older builds, user or client alike.
///
/// Anything else from the Authenticator is not an outcome.
pub fn parse_authentication(message: &str) -> Option<Authentication> {
    let message = message.trim_end();
    let outcome = |kind, success, user: Option<&str>| {
        Some(Authentication {
            kind,
            success,
            user: user.filter(|u| !u.is_empty()).map(UserKey::of),
        })
    };
    if let Some(rest) = message.strip_prefix("Authentication success for ") {
        if let Some(uid) = rest.strip_prefix("User: ").and_then(quoted) {
            return outcome(AuthKind::User, true, Some(uid));
        }
        if rest.strip_prefix("Client: ").and_then(quoted).is_some() {
            return outcome(AuthKind::Client, true, None);
        }
        return None;
    }
    let rest = message.strip_prefix("Authentication failed for ")?;
    if let Some(uid) = rest
        .strip_prefix("user:")
        .map(|u| u.strip_prefix(' ').unwrap_or(u))
    {
        let uid = FAILURE_SUFFIXES
            .iter()
            .find_map(|s| uid.strip_suffix(s))
            .unwrap_or(uid);
        return outcome(AuthKind::User, false, Some(uid));
    }
    if rest.strip_prefix("User: ").and_then(quoted).is_some() {
        return outcome(AuthKind::Service, false, None);
    }
    if quoted(rest).is_some() {
        return outcome(AuthKind::Unknown, false, None);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(kind: AuthKind, success: bool, user: Option<&str>) -> Option<Authentication> {
        Some(Authentication {
            kind,
            success,
            user: user.map(UserKey::of),
        })
    }

    #[test]
    fn reads_every_wording_of_current_and_older_builds() {
        let cases = [
            ("Authentication success for User: 'jdoe'", auth(AuthKind::User, true, Some("jdoe"))),
            ("Authentication failed for user: jdoe", auth(AuthKind::User, false, Some("jdoe"))),
            (
                "Authentication failed for user: j.doe. Custom script returned false for authenticate method.",
                auth(AuthKind::User, false, Some("j.doe")),
            ),
            ("Authentication failed for user: jdoe. Failed to find session.", auth(AuthKind::User, false, Some("jdoe"))),
            ("Authentication failed for User: 'svc'", auth(AuthKind::Service, false, None)),
            ("Authentication success for Client: '2201.8c1a'", auth(AuthKind::Client, true, None)),
            ("Authentication failed for 'jdoe'", auth(AuthKind::Unknown, false, None)),
            ("Authentication success for User: 'jdoe'  ", auth(AuthKind::User, true, Some("jdoe"))),
            ("Authentication failed for user: ", auth(AuthKind::User, false, None)),
            ("Authenticating user 'jdoe'", None),
            ("Authentication success for Someone: 'x'", None),
            ("Authentication failed for User: 'unterminated", None),
        ];
        for (message, want) in cases {
            assert_eq!(parse_authentication(message), want, "{message}");
        }
    }

    #[test]
    fn only_the_authenticator_reports_logins() {
        let line = "Authentication success for User: 'jdoe'";
        let t = LineTime::Utc(1);
        assert!(
            parse_server_message(0, LogLevel::Info, t, AUTHENTICATOR, line)
                .authentication
                .is_some()
        );
        assert!(
            parse_server_message(0, LogLevel::Info, t, "io.jans.as.server.Other", line)
                .authentication
                .is_none()
        );
    }
}
