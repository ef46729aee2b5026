// `Dot(axes, normalize)` (pynn-core's `ops::dot`): per sample, out[fx, fy] = Σ_k x[fx, k] ·
// y[fy, k] over the fibers of each input along its axis, each fiber first scaled to unit length
// with `normalize` (by min(1 / sqrt(Σ v²), 1e7), as Keras's `normalize`). `scales` works out
// every fiber's scale, `forward` the output, `input_gradient` one input's gradient (written, or
// added with `accumulate`).

struct Params {
    x_outer: u32,
    x_len: u32,
    x_inner: u32,
    y_outer: u32,
    y_len: u32,
    y_inner: u32,
    normalize: u32,
    side: u32,        // input_gradient: 0 for x's, 1 for y's
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const MAX_INVERSE_NORM: f32 = 1e7;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
// Per sample, x's fibers' scales then y's.
@group(0) @binding(2) var<storage, read_write> scales: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read> out: array<f32>;
// forward: the output; input_gradient: the input's gradient.
@group(0) @binding(5) var<storage, read_write> result: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
@group(0) @binding(7) var<uniform> step: Step;

fn x_fibers() -> u32 {
    return p.x_outer * p.x_inner;
}

fn y_fibers() -> u32 {
    return p.y_outer * p.y_inner;
}

fn x_at(b: u32, f: u32, k: u32) -> u32 {
    let size = p.x_outer * p.x_len * p.x_inner;
    return b * size + ((f / p.x_inner) * p.x_len + k) * p.x_inner + f % p.x_inner;
}

fn y_at(b: u32, f: u32, k: u32) -> u32 {
    let size = p.y_outer * p.y_len * p.y_inner;
    return b * size + ((f / p.y_inner) * p.y_len + k) * p.y_inner + f % p.y_inner;
}

fn x_scale(b: u32, f: u32) -> f32 {
    return scales[b * (x_fibers() + y_fibers()) + f];
}

fn y_scale(b: u32, f: u32) -> f32 {
    return scales[b * (x_fibers() + y_fibers()) + x_fibers() + f];
}

@compute @workgroup_size(64)
fn fiber_scales(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let per_sample = x_fibers() + y_fibers();
    let i = flat_index(id, groups);
    if (i >= step.rows * per_sample) {
        return;
    }
    if (p.normalize == 0u) {
        scales[i] = 1.0;
        return;
    }
    let b = i / per_sample;
    let n = i % per_sample;
    var sum = 0.0;
    if (n < x_fibers()) {
        for (var k = 0u; k < p.x_len; k++) {
            let v = x[x_at(b, n, k)];
            sum += v * v;
        }
    } else {
        for (var k = 0u; k < p.y_len; k++) {
            let v = y[y_at(b, n - x_fibers(), k)];
            sum += v * v;
        }
    }
    scales[i] = min(1.0 / sqrt(sum), MAX_INVERSE_NORM);
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let per_sample = x_fibers() * y_fibers();
    let i = flat_index(id, groups);
    if (i >= step.rows * per_sample) {
        return;
    }
    let b = i / per_sample;
    let fx = (i % per_sample) / y_fibers();
    let fy = i % y_fibers();
    var sum = 0.0;
    for (var k = 0u; k < p.x_len; k++) {
        sum += x[x_at(b, fx, k)] * y[y_at(b, fy, k)];
    }
    result[i] = sum * (x_scale(b, fx) * y_scale(b, fy));
}

// Value k of fiber f of one input: the part of each output value its fiber meets.
@compute @workgroup_size(64)
fn input_gradient(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let mine_x = p.side == 0u;
    let outer = select(p.y_outer, p.x_outer, mine_x);
    let len = select(p.y_len, p.x_len, mine_x);
    let inner = select(p.y_inner, p.x_inner, mine_x);
    let size = outer * len * inner;
    let i = flat_index(id, groups);
    if (i >= step.rows * size) {
        return;
    }
    let b = i / size;
    let within = i % size;
    let k = (within / inner) % len;
    let f = (within / (len * inner)) * inner + within % inner;
    let others = select(x_fibers(), y_fibers(), mine_x);
    let out_size = x_fibers() * y_fibers();
    var scale: f32;
    var mine: f32;
    if (mine_x) {
        scale = x_scale(b, f);
        mine = x[i];
    } else {
        scale = y_scale(b, f);
        mine = y[i];
    }
    var along = 0.0;
    var du = 0.0;
    for (var g = 0u; g < others; g++) {
        var o: u32;
        var theirs: f32;
        if (mine_x) {
            o = b * out_size + f * y_fibers() + g;
            theirs = y[y_at(b, g, k)] * y_scale(b, g);
        } else {
            o = b * out_size + g * x_fibers() + f;
            theirs = x[x_at(b, g, k)] * x_scale(b, g);
        }
        along += dy[o] * out[o];
        du += dy[o] * theirs;
    }
    if (p.normalize == 0u || scale >= MAX_INVERSE_NORM) {
        along = 0.0;
    }
    result[i] = select(0.0, result[i], p.accumulate == 1u) + scale * (du - mine * scale * along);
}
