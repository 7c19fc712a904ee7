// The tinyllama-en-outliers fixture as the transform tests use it: config, checkpoint and a
// small calibration draw (8 random segments of 64 tokens), loaded once per test binary.
#pragma once

#include <memory>
#include <string>

#include "core/calib/calibration_set.h"
#include "core/io/safetensors.h"
#include "core/model/config.h"
#include "core/text/token_source.h"

namespace caliber::testing_fixture {

inline const std::string kOutliersModelDir = std::string(CALIBER_TESTDATA_DIR) + "/tinyllama-en-outliers";

struct OutliersFixture {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;
  CalibrationSet calib;
};

inline const OutliersFixture& Outliers() {
  static const OutliersFixture* fixture = [] {
    auto* f = new OutliersFixture;
    f->config = *ModelConfig::FromFile(kOutliersModelDir + "/config.json");
    f->checkpoint = *Checkpoint::Open(kOutliersModelDir);
    auto stream = LoadTokenStream(kOutliersModelDir + "/calib/calib_tokens.i32", TokenFormat::kI32, nullptr,
                                  f->config.vocab_size);
    f->calib = *SelectCalibrationSegments(*stream, 8, 64, 0, CalibSampling::kRandom);
    return f;
  }();
  return *fixture;
}

}  // namespace caliber::testing_fixture
