//! One error type for the whole engine; the Python binding maps each variant to an exception.

use thiserror::Error;

use crate::memory::readable_bytes;

#[derive(Debug, Error, PartialEq)]
pub enum CoreError {
    /// An argument has a value the engine cannot use. Maps to `ValueError`.
    #[error("Invalid `{name}`: expected {expected}, got {got}.")]
    InvalidArgument {
        name: String,
        expected: String,
        got: String,
    },
    /// Arrays whose shapes do not fit together. Maps to `ValueError`.
    #[error("Shape mismatch for `{name}`: expected {expected}, got {got}.")]
    ShapeMismatch {
        name: String,
        expected: String,
        got: String,
    },
    /// A spec (layer, optimizer, loss, metric) that could not be parsed. Maps to `ValueError`.
    #[error("Invalid spec: {0}")]
    InvalidSpec(String),
    /// A layer that cannot be built for its input. Maps to `ValueError` naming the layer.
    #[error("{source} (input shape {input_shape:?})")]
    InLayer {
        index: usize,
        input_shape: Vec<usize>,
        source: Box<CoreError>,
    },
    /// The operation needs a state the engine is not in (e.g. training before compiling).
    /// Maps to `RuntimeError`.
    #[error("{0}")]
    State(String),
    /// A buffer the machine could not allocate. Maps to `MemoryError`.
    #[error(
        "Not enough memory for {what}: {} could not be allocated.{hint}",
        readable_bytes(*bytes)
    )]
    OutOfMemory {
        what: String,
        bytes: u128,
        /// What to change, as a sentence with a leading space, or empty.
        hint: String,
    },
    /// A buffer larger than any machine can address. Maps to `ValueError`.
    #[error(
        "{what} would need {}, more than any machine can address.{hint}",
        readable_bytes(*bytes)
    )]
    TooLarge {
        what: String,
        bytes: u128,
        hint: String,
    },
    /// The caller asked the computation to stop (Ctrl-C) before it ended.
    #[error("interrupted")]
    Interrupted,
    /// A device other than the CPU does not run what the model uses (named). Maps to
    /// `NotImplementedError`.
    #[error("the device does not run {0} yet")]
    Unsupported(String),
    /// A device other than the CPU failed. Maps to `RuntimeError`.
    #[error("{0}")]
    Device(String),
    /// A device other than the CPU ran out of memory. Maps to `MemoryError`.
    #[error("{0}")]
    DeviceMemory(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn invalid(name: &str, expected: impl Into<String>, got: impl ToString) -> Self {
        CoreError::InvalidArgument {
            name: name.to_string(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Says what a buffer that could not be allocated was for (`what`: "the activations of a
    /// batch of 512 samples") and what to change (`hint`: "Lower `batch_size`."); other errors
    /// pass unchanged.
    pub fn for_buffer(self, what: impl FnOnce() -> String, hint: &str) -> Self {
        let hint = format!(" {hint}");
        match self {
            CoreError::OutOfMemory { bytes, .. } => CoreError::OutOfMemory {
                what: what(),
                bytes,
                hint,
            },
            CoreError::TooLarge { bytes, .. } => CoreError::TooLarge {
                what: what(),
                bytes,
                hint,
            },
            other => other,
        }
    }

    /// Whether this is a buffer that could not be allocated.
    pub fn is_memory(&self) -> bool {
        matches!(
            self,
            CoreError::OutOfMemory { .. } | CoreError::TooLarge { .. }
        )
    }

    pub fn shape(name: &str, expected: impl ToString, got: impl ToString) -> Self {
        CoreError::ShapeMismatch {
            name: name.to_string(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
