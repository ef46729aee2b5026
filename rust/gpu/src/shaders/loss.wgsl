// The loss of each row of one output and its gradient with respect to the prediction (scaled
// by the loss's weight over the rows: the batch mean), and each metric's row value, with pynn-core's `kernels::loss` and
// `metrics` formulas. `rows` runs one invocation per row; `statistics` sums the rows' values
// into the batch's slot of the epoch's statistics.
//
// With a head (pynn-core's `head`: the output layer's sigmoid or softmax, moved here), `pred`
// holds the output layer's logits: crossentropies read them as logits, everything else reads
// the probabilities `out(r, j)`, and the gradient is always with respect to the logits.

const EPSILON: f32 = 1e-7;

// A loss or a metric: its kind, whether it takes logits, and its label smoothing (losses) or
// threshold (binary accuracy).
struct Spec {
    kind: u32,
    from_logits: u32,
    value: f32,
    _pad: u32,
}

struct Params {
    width: u32,       // predictions per row
    target_width: u32,
    n_metrics: u32,
    stats_stride: u32, // statistics per batch: each output's loss and metrics, the penalty

    loss: Spec,
    metrics: array<Spec, 4>,

    head: u32,        // 0: none; the activation code of a sigmoid or a softmax head
    loss_weight: f32, // Keras's `loss_weights`: scales the loss's gradient
    rows_per_sample: u32,
    stats_offset: u32, // where this output's sums start in a batch's statistics
    accumulate: u32,   // 1: add the gradient to what `grad` holds (an output given twice)
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

// The current row's largest logit and its softmax's denominator, with a softmax head.
var<private> row_top: f32;
var<private> row_sum: f32;

@group(0) @binding(0) var<storage, read> pred: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> row_values: array<f32>;
@group(0) @binding(4) var<storage, read_write> statistics: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<uniform> step: Step;

// Writes (or with `accumulate`, adds) gradient value i.
fn put(i: u32, value: f32) {
    grad[i] = select(0.0, grad[i], p.accumulate == 1u) + value;
}

fn target_at(r: u32, j: u32) -> f32 {
    return targets[r * p.target_width + j];
}

// The row's softmax statistics, before anything reads `out` of row r.
fn begin_row(r: u32) {
    if (p.head != SOFTMAX) {
        return;
    }
    row_top = -3.4e38;
    for (var j = 0u; j < p.width; j++) {
        row_top = max(row_top, pred[r * p.width + j]);
    }
    row_sum = 0.0;
    for (var j = 0u; j < p.width; j++) {
        row_sum += exp(pred[r * p.width + j] - row_top);
    }
}

// The model's output (a probability, after the head, if any).
fn out(r: u32, j: u32) -> f32 {
    let x = pred[r * p.width + j];
    switch p.head {
        case SIGMOID: { return sigmoid(x); }
        case SOFTMAX: { return exp(x - row_top) / row_sum; }
        default: { return x; }
    }
}

// Turns the gradient with respect to the outputs into one with respect to the logits.
fn through_head(r: u32) {
    let first = r * p.width;
    if (p.head == SIGMOID) {
        for (var j = 0u; j < p.width; j++) {
            let a = out(r, j);
            grad[first + j] *= a * (1.0 - a);
        }
    } else if (p.head == SOFTMAX) {
        var dot = 0.0;
        for (var j = 0u; j < p.width; j++) {
            dot += grad[first + j] * out(r, j);
        }
        for (var j = 0u; j < p.width; j++) {
            grad[first + j] = out(r, j) * (grad[first + j] - dot);
        }
    }
}

// The (possibly smoothed) one-hot target of class j.
fn class_target(s: Spec, r: u32, j: u32) -> f32 {
    if (s.kind == SPARSE_CATEGORICAL_CROSSENTROPY) {
        return select(0.0, 1.0, u32(target_at(r, 0u)) == j);
    }
    return target_at(r, j) * (1.0 - s.value) + s.value / f32(p.width);
}

fn mean_squared_error(r: u32, write: bool, scale: f32) -> f32 {
    let n = p.width;
    var total = 0.0;
    for (var j = 0u; j < n; j++) {
        let d = out(r, j) - target_at(r, j);
        total += d * d;
        if (write) {
            put(r * n + j, scale * 2.0 * d / f32(n));
        }
    }
    return total / f32(n);
}

fn mean_absolute_error(r: u32, write: bool, scale: f32) -> f32 {
    let n = p.width;
    var total = 0.0;
    for (var j = 0u; j < n; j++) {
        let d = out(r, j) - target_at(r, j);
        total += abs(d);
        if (write) {
            put(r * n + j, scale * sign(d) / f32(n));
        }
    }
    return total / f32(n);
}

fn binary_crossentropy(s: Spec, r: u32, write: bool, scale: f32) -> f32 {
    let n = p.width;
    var total = 0.0;
    for (var j = 0u; j < n; j++) {
        let x = pred[r * n + j];
        let y = target_at(r, j) * (1.0 - s.value) + 0.5 * s.value;
        var value: f32;
        var derivative: f32;
        if (s.from_logits == 1u) {
            value = max(x, 0.0) - x * y + log1p(exp(-abs(x)));
            derivative = sigmoid(x) - y;
        } else {
            let q = clamp(x, EPSILON, 1.0 - EPSILON);
            value = -(y * log(q) + (1.0 - y) * log(1.0 - q));
            let inside = x >= EPSILON && x <= 1.0 - EPSILON;
            derivative = select(0.0, (q - y) / (q * (1.0 - q)), inside);
        }
        total += value;
        if (write) {
            put(r * n + j, scale * derivative / f32(n));
        }
    }
    return total / f32(n);
}

fn categorical_crossentropy(s: Spec, r: u32, write: bool, scale: f32) -> f32 {
    let n = p.width;
    let first = r * n;
    if (s.from_logits == 1u) {
        var top = -3.4e38;
        for (var j = 0u; j < n; j++) {
            top = max(top, pred[first + j]);
        }
        var sum_exp = 0.0;
        var y_sum = 0.0;
        for (var j = 0u; j < n; j++) {
            sum_exp += exp(pred[first + j] - top);
            y_sum += class_target(s, r, j);
        }
        let log_sum = top + log(sum_exp);
        var total = 0.0;
        for (var j = 0u; j < n; j++) {
            let y = class_target(s, r, j);
            total -= y * (pred[first + j] - log_sum);
            if (write) {
                put(first + j, scale * (exp(pred[first + j] - top) / sum_exp * y_sum - y));
            }
        }
        return total;
    }
    var sum = 0.0;
    for (var j = 0u; j < n; j++) {
        sum += pred[first + j];
    }
    var total = 0.0;
    var dot = 0.0;
    for (var j = 0u; j < n; j++) {
        let q = pred[first + j] / sum;
        let y = class_target(s, r, j);
        total -= y * log(clamp(q, EPSILON, 1.0 - EPSILON));
        if (q >= EPSILON && q <= 1.0 - EPSILON) {
            dot += -y / q * q;
        }
    }
    if (write) {
        // With q = p/Σp and c = clip(q): ∂L/∂p_i = (∂L/∂c_i − Σ_j ∂L/∂c_j·q_j)/Σp.
        for (var i = 0u; i < n; i++) {
            let q = pred[first + i] / sum;
            var dc = 0.0;
            if (q >= EPSILON && q <= 1.0 - EPSILON) {
                dc = -class_target(s, r, i) / q;
            }
            put(first + i, scale * (dc - dot) / sum);
        }
    }
    return total;
}

// Sparse categorical crossentropy of a row that is not logits: each value clipped, then the
// log-softmax of their logarithms, `-log q_c + log sum(q)` (not renormalised first).
fn sparse_crossentropy_of_probabilities(r: u32, write: bool, scale: f32) -> f32 {
    let n = p.width;
    let first = r * n;
    let label = u32(target_at(r, 0u));
    var sum = 0.0;
    for (var j = 0u; j < n; j++) {
        sum += clamp(pred[first + j], EPSILON, 1.0 - EPSILON);
    }
    if (write) {
        for (var j = 0u; j < n; j++) {
            let v = pred[first + j];
            let inside = v >= EPSILON && v <= 1.0 - EPSILON;
            let own = select(0.0, 1.0 / clamp(v, EPSILON, 1.0 - EPSILON), j == label);
            put(first + j, select(0.0, scale * (1.0 / sum - own), inside));
        }
    }
    return log(sum) - log(clamp(pred[first + label], EPSILON, 1.0 - EPSILON));
}

fn loss_of_row(s: Spec, r: u32, write: bool, scale: f32) -> f32 {
    switch s.kind {
        case NO_LOSS: {
            for (var j = 0u; j < p.width && write; j++) {
                put(r * p.width + j, 0.0);
            }
            return 0.0;
        }
        case MSE: {
            let value = mean_squared_error(r, write, scale);
            if (write) {
                through_head(r);
            }
            return value;
        }
        case MAE: {
            let value = mean_absolute_error(r, write, scale);
            if (write) {
                through_head(r);
            }
            return value;
        }
        default: { return crossentropy(s, r, write, scale); }
    }
}

// A crossentropy: from the logits where there is a head (as Keras on TensorFlow computes it).
fn crossentropy(s: Spec, r: u32, write: bool, scale: f32) -> f32 {
    var spec = s;
    if (p.head != 0u) {
        spec.from_logits = 1u;
    }
    switch spec.kind {
        case BINARY_CROSSENTROPY: { return binary_crossentropy(spec, r, write, scale); }
        case SPARSE_CATEGORICAL_CROSSENTROPY: {
            if (spec.from_logits == 0u) {
                return sparse_crossentropy_of_probabilities(r, write, scale);
            }
            return categorical_crossentropy(spec, r, write, scale);
        }
        default: { return categorical_crossentropy(spec, r, write, scale); }
    }
}

// The index of the first maximum of a row of the outputs (or of the targets).
fn argmax_pred(r: u32) -> u32 {
    var best = 0u;
    for (var j = 1u; j < p.width; j++) {
        if (out(r, j) > out(r, best)) {
            best = j;
        }
    }
    return best;
}

fn argmax_target(r: u32) -> u32 {
    var best = 0u;
    for (var j = 1u; j < p.width; j++) {
        if (target_at(r, j) > target_at(r, best)) {
            best = j;
        }
    }
    return best;
}

fn metric_of_row(s: Spec, r: u32) -> f32 {
    switch s.kind {
        case BINARY_ACCURACY: {
            var hits = 0.0;
            for (var j = 0u; j < p.width; j++) {
                let predicted = select(0.0, 1.0, out(r, j) > s.value);
                hits += select(0.0, 1.0, target_at(r, j) == predicted);
            }
            return hits / f32(p.width);
        }
        case CATEGORICAL_ACCURACY: { return select(0.0, 1.0, argmax_target(r) == argmax_pred(r)); }
        case SPARSE_CATEGORICAL_ACCURACY: { return select(0.0, 1.0, target_at(r, 0u) == f32(argmax_pred(r))); }
        case ACCURACY: {
            var equal = 0.0;
            for (var j = 0u; j < p.width; j++) {
                equal += select(0.0, 1.0, target_at(r, j) == out(r, j));
            }
            return equal / f32(p.width);
        }
        default: { return loss_of_row(s, r, false, 0.0); }
    }
}

@compute @workgroup_size(64)
fn rows(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let r = flat_index(id, groups);
    let rows = step.rows * p.rows_per_sample;
    if (r >= rows) {
        return;
    }
    let stride = 1u + p.n_metrics;
    begin_row(r);
    row_values[r * stride] = loss_of_row(p.loss, r, true, p.loss_weight / f32(rows));
    for (var m = 0u; m < p.n_metrics; m++) {
        row_values[r * stride + 1u + m] = metric_of_row(p.metrics[m], r);
    }
}

@compute @workgroup_size(1)
fn sum_rows() {
    let stride = 1u + p.n_metrics;
    let first = step.batch * p.stats_stride;
    for (var k = 0u; k < stride; k++) {
        var total = 0.0;
        for (var r = 0u; r < step.rows * p.rows_per_sample; r++) {
            total += row_values[r * stride + k];
        }
        statistics[first + p.stats_offset + k] = total;
    }
    // The penalty slot, which the regularizers' `value` dispatches add to.
    if (p.stats_offset == 0u) {
        statistics[first + p.stats_stride - 1u] = 0.0;
    }
}
