// The parameters of a Dense or convolution layer's epilogue (bias and activation), shared by
// its forward (activation.wgsl) and backward (activation_backward.wgsl).
struct Params {
    n: u32,          // values per sample
    activation: u32,
    use_bias: u32,
    bias_offset: u32,
    period: u32,     // values per row: units (Dense) or filters (convolution)
    _pad: u32,
    _pad2: u32,
    _pad3: u32,
}
