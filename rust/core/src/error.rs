//! One error type for the whole engine; the Python binding maps each variant to an exception.

use thiserror::Error;

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

    pub fn shape(name: &str, expected: impl ToString, got: impl ToString) -> Self {
        CoreError::ShapeMismatch {
            name: name.to_string(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
