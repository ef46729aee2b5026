//! The numeric codes that Rust and the WGSL shaders share, each written once: the lists below
//! become Rust constants (one module per family) and the WGSL constants that [`WGSL`] prepends
//! to every shader, so a shader names `RELU` or `ADAM` and never a number.

use pynn_core::kernels::activation::Activation;
use pynn_core::ops::MergeOp;

/// Each family as a module of `u32` constants, and all of them as WGSL source in [`WGSL`].
macro_rules! codes {
    ($($(#[$doc:meta])* $family:ident { $($name:ident = $value:literal),* $(,)? })*) => {
        $(
            $(#[$doc])*
            pub mod $family {
                $(pub const $name: u32 = $value;)*
            }
        )*
        /// Every code as a WGSL `const`.
        pub const WGSL: &str = concat!($($(
            "const ", stringify!($name), ": u32 = ", stringify!($value), "u;\n",
        )*)*);
    };
}

codes! {
    /// pynn-core's activations: a layer's epilogue, and an output's head (0: none).
    activation {
        LINEAR = 0, RELU = 1, SIGMOID = 2, TANH = 3, SOFTMAX = 4, ELU = 5, SELU = 6, GELU = 7,
        SOFTPLUS = 8, LEAKY_RELU = 9, SILU = 10,
    }
    /// Losses, in a loss or metric spec's `kind`; an output without a loss has `NO_LOSS`.
    loss {
        MSE = 0, MAE = 1, BINARY_CROSSENTROPY = 2, CATEGORICAL_CROSSENTROPY = 3,
        SPARSE_CATEGORICAL_CROSSENTROPY = 4, NO_LOSS = 5,
    }
    /// Metrics share the `kind` of a spec with the losses (a metric may be a loss), so their
    /// codes start past them.
    metric {
        BINARY_ACCURACY = 10, CATEGORICAL_ACCURACY = 11, SPARSE_CATEGORICAL_ACCURACY = 12,
        ACCURACY = 13,
    }
    optimizer { SGD = 0, ADAM = 1, RMSPROP = 2, ADAGRAD = 3 }
    pool { MAX_POOL = 0, AVERAGE_POOL = 1 }
    /// pynn-core's element-wise merges.
    merge { ADD = 0, SUBTRACT = 1, MULTIPLY = 2, AVERAGE = 3, MAXIMUM = 4, MINIMUM = 5 }
}

// A spec's `kind` is a loss's or a metric's: the metrics' codes start past the losses'.
const _: () = assert!(loss::NO_LOSS < metric::BINARY_ACCURACY);

/// The code of a merge's `op`.
pub fn merge_code(op: MergeOp) -> u32 {
    use merge::*;
    match op {
        MergeOp::Add => ADD,
        MergeOp::Subtract => SUBTRACT,
        MergeOp::Multiply => MULTIPLY,
        MergeOp::Average => AVERAGE,
        MergeOp::Maximum => MAXIMUM,
        MergeOp::Minimum => MINIMUM,
    }
}

/// The code of `a`.
pub fn activation_code(a: Activation) -> u32 {
    use activation::*;
    match a {
        Activation::Linear => LINEAR,
        Activation::Relu => RELU,
        Activation::Sigmoid => SIGMOID,
        Activation::Tanh => TANH,
        Activation::Softmax => SOFTMAX,
        Activation::Elu => ELU,
        Activation::Selu => SELU,
        Activation::Gelu => GELU,
        Activation::Softplus => SOFTPLUS,
        Activation::LeakyRelu => LEAKY_RELU,
        Activation::Silu => SILU,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shaders_read_the_same_values_as_rust() {
        assert!(WGSL.starts_with("const LINEAR: u32 = 0u;\nconst RELU: u32 = 1u;\n"));
        assert!(WGSL.contains(&format!("const ADAM: u32 = {}u;\n", optimizer::ADAM)));
        assert!(WGSL.contains("const ACCURACY: u32 = 13u;\n"));
        assert_eq!(WGSL.lines().count(), 11 + 6 + 4 + 4 + 2 + 6);
    }

    #[test]
    fn activations_have_distinct_codes() {
        use pynn_core::kernels::activation::Activation::*;
        let all = [
            Linear, Relu, Sigmoid, Tanh, Softmax, Elu, Selu, Gelu, Softplus, LeakyRelu, Silu,
        ];
        let mut codes: Vec<u32> = all.iter().map(|&a| activation_code(a)).collect();
        codes.sort();
        assert_eq!(codes, (0..all.len() as u32).collect::<Vec<_>>());
    }
}
