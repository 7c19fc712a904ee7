// Dense matrix types used across the core. Row-major so that a Hugging Face linear weight
// W [out x in] and a batch of activations X [tokens x features] map onto memory as stored;
// Eigen dispatches large products to OpenBLAS (EIGEN_USE_BLAS).
#pragma once

#include <Eigen/Dense>

namespace caliber {

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorF = Eigen::VectorXf;
using VectorD = Eigen::VectorXd;
using MapMatrixF = Eigen::Map<MatrixF>;
using ConstMapMatrixF = Eigen::Map<const MatrixF>;

}  // namespace caliber
