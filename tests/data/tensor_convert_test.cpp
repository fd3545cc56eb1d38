#include <gtest/gtest.h>

#include "stablelearn/core/error.h"
#include "stablelearn/data/tensor_convert.h"

namespace sl = stablelearn;

TEST(TensorConvert, RoundTripsEveryDtypeWithShapeAndValues) {
  using sl::io::DType;
  const std::vector<double> values = {0, 1, 2, 3, 4, 5};
  for (DType t : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::Bool}) {
    const auto a = sl::io::NdArray::from_double(t, {2, 3}, values);
    const auto tensor = sl::data::to_tensor(a);
    EXPECT_EQ(tensor.sizes().vec(), (std::vector<std::int64_t>{2, 3}));
    // Element [1][2] is the sixth value (C order): 5, or true for bool.
    EXPECT_EQ(tensor[1][2].item<double>(), t == DType::Bool ? 1.0 : 5.0) << sl::io::dtype_name(t);
    EXPECT_EQ(tensor[0][0].item<double>(), 0.0);
    const auto back = sl::data::to_ndarray(tensor);
    EXPECT_EQ(back.dtype, t);
    EXPECT_EQ(back.shape, a.shape);
    EXPECT_EQ(back.bytes, a.bytes);
  }
}

TEST(TensorConvert, NonContiguousTensorsAreStoredInCOrder) {
  const auto t = torch::arange(6, torch::kFloat64).reshape({2, 3}).t();  // [[0,3],[1,4],[2,5]]
  const auto a = sl::data::to_ndarray(t);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(a.to_double(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorConvert, UnsupportedDtypeIsADataError) {
  EXPECT_THROW(sl::data::to_ndarray(torch::zeros({2}, torch::kFloat16)), sl::DataError);
}
