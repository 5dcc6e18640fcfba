// stoch — the two modes of every layer.
#pragma once

namespace stoch {

/// `train`: stochastic layers sample their noise and keep what backward needs.
/// `eval`: every layer computes its deterministic counterpart (App. A.3), and gates may be thresholded.
enum class Mode { train, eval };

}  // namespace stoch
