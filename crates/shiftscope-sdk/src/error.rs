//! The one error type that crosses the plugin boundary, and its status codes.

use std::fmt;

use shiftscope_abi::Status;

/// What kind of failure a [`PluginError`] is; maps one-to-one onto ABI status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Any failure without a more specific kind.
    Failed,
    /// A malformed argument: wrong shape, dtype, config.
    InvalidArgument,
    /// An index past the end.
    OutOfRange,
    /// A named dataset or layer does not exist.
    NotFound,
    /// The plugin panicked.
    Panic,
    /// The request is not supported.
    Unsupported,
}

impl ErrorKind {
    /// The ABI status code for this kind.
    pub fn status(self) -> Status {
        match self {
            ErrorKind::Failed => Status::ERROR,
            ErrorKind::InvalidArgument => Status::INVALID_ARGUMENT,
            ErrorKind::OutOfRange => Status::OUT_OF_RANGE,
            ErrorKind::NotFound => Status::NOT_FOUND,
            ErrorKind::Panic => Status::PANIC,
            ErrorKind::Unsupported => Status::UNSUPPORTED,
        }
    }

    /// The kind for an ABI status code (unknown codes read as [`ErrorKind::Failed`]).
    pub fn from_status(status: Status) -> ErrorKind {
        match status {
            Status::INVALID_ARGUMENT => ErrorKind::InvalidArgument,
            Status::OUT_OF_RANGE => ErrorKind::OutOfRange,
            Status::NOT_FOUND => ErrorKind::NotFound,
            Status::PANIC => ErrorKind::Panic,
            Status::UNSUPPORTED => ErrorKind::Unsupported,
            _ => ErrorKind::Failed,
        }
    }
}

/// An error returned by a plugin, with a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    kind: ErrorKind,
    message: String,
}

impl PluginError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> PluginError {
        PluginError {
            kind,
            message: message.into(),
        }
    }

    /// A generic failure.
    pub fn failed(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Failed, message)
    }

    /// A malformed argument.
    pub fn invalid_argument(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::InvalidArgument, message)
    }

    /// An index past the end.
    pub fn out_of_range(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::OutOfRange, message)
    }

    /// A named thing that does not exist.
    pub fn not_found(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::NotFound, message)
    }

    /// An unsupported request.
    pub fn unsupported(message: impl Into<String>) -> PluginError {
        PluginError::new(ErrorKind::Unsupported, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context: `, keeping the kind.
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> PluginError {
        PluginError {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_status_codes() {
        for kind in [
            ErrorKind::Failed,
            ErrorKind::InvalidArgument,
            ErrorKind::OutOfRange,
            ErrorKind::NotFound,
            ErrorKind::Panic,
            ErrorKind::Unsupported,
        ] {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
        }
        assert_eq!(ErrorKind::from_status(Status(1234)), ErrorKind::Failed);
    }

    #[test]
    fn context_prefixes_and_keeps_kind() {
        let e = PluginError::out_of_range("index 9 of 3").context("example/id");
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert_eq!(e.to_string(), "example/id: index 9 of 3");
    }
}
