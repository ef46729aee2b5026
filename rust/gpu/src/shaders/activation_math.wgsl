// The activations of pynn-core's `kernels::activation`, with the same formulas. Their codes
// (`RELU`, ...) come from `codes.rs`.

const SELU_ALPHA: f32 = 1.6732632423543772;
const SELU_SCALE: f32 = 1.0507009873554805;
const LEAKY_RELU_SLOPE: f32 = 0.2;

fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// log(1 + x) without the cancellation near 0.
fn log1p(x: f32) -> f32 {
    if (abs(x) < 1e-3) {
        return x - x * x * 0.5 + x * x * x / 3.0;
    }
    return log(1.0 + x);
}

fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log1p(exp(-abs(z)));
}

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-x * x);
    return select(-y, y, x >= 0.0);
}

fn activate(code: u32, z: f32) -> f32 {
    switch code {
        case RELU: { return max(z, 0.0); }
        case SIGMOID: { return sigmoid(z); }
        case TANH: { return tanh(clamp(z, -15.0, 15.0)); }
        case ELU: { return select(exp(z) - 1.0, z, z > 0.0); }
        case SELU: { return select(SELU_SCALE * SELU_ALPHA * (exp(z) - 1.0), SELU_SCALE * z, z > 0.0); }
        case GELU: { return 0.5 * z * (1.0 + erf(z * 0.70710678118654752)); }
        case SOFTPLUS: { return softplus(z); }
        case LEAKY_RELU: { return select(LEAKY_RELU_SLOPE * z, z, z >= 0.0); }
        case SILU: { return z * sigmoid(z); }
        default: { return z; }
    }
}

// f'(z), given the input z and the output a = f(z).
fn slope(code: u32, z: f32, a: f32) -> f32 {
    switch code {
        case RELU: { return select(0.0, 1.0, z > 0.0); }
        case SIGMOID: { return a * (1.0 - a); }
        case TANH: { return 1.0 - a * a; }
        case ELU: { return select(1.0, a + 1.0, a < 0.0); }
        case SELU: { return select(SELU_SCALE, a + SELU_SCALE * SELU_ALPHA, a < 0.0); }
        case GELU: {
            let cdf = 0.5 * (1.0 + erf(z * 0.70710678118654752));
            let pdf = exp(-0.5 * z * z) / sqrt(2.0 * 3.14159265358979);
            return cdf + z * pdf;
        }
        case SOFTPLUS: { return sigmoid(z); }
        case LEAKY_RELU: { return select(LEAKY_RELU_SLOPE, 1.0, z > 0.0); }
        case SILU: {
            let s = sigmoid(z);
            return s * (1.0 + z * (1.0 - s));
        }
        default: { return 1.0; }
    }
}
