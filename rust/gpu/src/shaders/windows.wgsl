// A convolution's or pooling's windows over NHWC images (1-D: a height of 1), as pynn-core's
// `kernels::conv::Geometry` describes them.
struct Windows {
    in_h: u32,
    in_w: u32,
    channels: u32,
    filters: u32,     // convolution: output channels; pooling: unused
    out_h: u32,
    out_w: u32,
    k_h: u32,         // kernel or pool size
    k_w: u32,
    stride_h: u32,
    stride_w: u32,
    dilation_h: u32,
    dilation_w: u32,
    pad_h: u32,       // zero padding before the first row and column
    pad_w: u32,
    offset: u32,      // convolution: where the kernel starts in the weights
    kind: u32,        // pooling: 0 max, 1 average
}

// The input coordinate that output o reads through kernel tap k, or -1 in the padding.
fn source(o: u32, k: u32, stride: u32, dilation: u32, pad: u32, size: u32) -> i32 {
    let at = i32(o * stride + k * dilation) - i32(pad);
    return select(-1, at, at >= 0 && at < i32(size));
}
