// Copies between a narrow tensor and its place in a wide one, sample by sample and in runs:
// Concatenate's forward (an input into its place in the output) and backward (its part of the
// output's gradient back out), a merge's inputs gathered side by side, and one gradient added
// to another (a single run). With `accumulate` the target keeps what it holds and adds to it.

struct Params {
    n: u32,          // values per sample of the narrow tensor
    run: u32,        // its values per run
    wide_n: u32,     // values per sample of the wide tensor
    wide_run: u32,   // the wide tensor's values per run
    offset: u32,     // where the narrow tensor's run starts in a wide run
    to_wide: u32,    // 1: narrow into wide; 0: wide into narrow
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> narrow: array<f32>;
@group(0) @binding(1) var<storage, read_write> wide: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(id, groups);
    if (i >= step.rows * p.n) {
        return;
    }
    let sample = i / p.n;
    let j = i % p.n;
    let w = sample * p.wide_n + (j / p.run) * p.wide_run + p.offset + j % p.run;
    let keep = p.accumulate == 1u;
    if (p.to_wide == 1u) {
        wide[w] = select(0.0, wide[w], keep) + narrow[i];
    } else {
        narrow[i] = select(0.0, narrow[i], keep) + wide[w];
    }
}
