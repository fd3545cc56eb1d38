// MATLAB .mat files (v5/v7/v7.3 via matio), for the original LASA handwriting files:
// variables `dt` (scalar) and `demos` (1 x n cell of structs with fields pos [2 x T], t [1 x T],
// vel [2 x T], acc [2 x T], dt).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "stablelearn/io/ndarray.h"

namespace stablelearn::io {

/// One demonstration of a LASA .mat file. Arrays are float64, C order, with MATLAB's
/// [2 x T] matrices transposed to [T x 2] (one row per sample).
struct LasaMatDemo {
  NdArray pos;  ///< [T, 2]
  NdArray t;    ///< [T]
  NdArray vel;  ///< [T, 2]
  NdArray acc;  ///< [T, 2]
  double dt = 0;
};

struct LasaMat {
  double dt = 0;                   ///< average time step over all demonstrations
  std::vector<LasaMatDemo> demos;  ///< demos{1..n}
};

/// Reads a LASA .mat file. IoError when the file cannot be read; DataError naming the file and
/// the missing or ill-shaped variable or field (e.g. "Angle.mat: demos{3} has no field 'vel'")
/// when it is not a .mat file, is not a LASA file, or is truncated/corrupt (any error matio
/// reports while reading counts, even where matio itself carries on with partial data).
LasaMat read_lasa_mat(const std::filesystem::path& path);

/// Summary of the variables of any .mat file: name, class ("double", "cell", "struct", ...)
/// and dimensions. Used by `stablelearn data info`.
struct MatVariableInfo {
  std::string name;
  std::string class_name;
  std::vector<std::int64_t> dims;
  NdArray value;  ///< real numeric variables only: float64 of shape `dims`, C order; empty otherwise
};
/// Variables in file order; IoError / DataError as for read_lasa_mat.
std::vector<MatVariableInfo> list_mat_variables(const std::filesystem::path& path);

}  // namespace stablelearn::io
