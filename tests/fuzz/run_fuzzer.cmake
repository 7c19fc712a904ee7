# Runs one libFuzzer binary for a bounded time on a fresh copy of its seed corpus.
#   cmake -DFUZZER=<exe> -DSEEDS=<dir> -DDICT=<file> -DWORK_DIR=<dir> -DSECONDS=<n> -P run_fuzzer.cmake
# Crash reproducers land in WORK_DIR/artifacts; rerun one with `<exe> <file>`.
foreach(var FUZZER SEEDS DICT WORK_DIR SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... is required")
  endif()
endforeach()

set(corpus ${WORK_DIR}/corpus)
set(artifacts ${WORK_DIR}/artifacts)
file(REMOVE_RECURSE ${corpus})
file(MAKE_DIRECTORY ${corpus} ${artifacts})
file(COPY ${SEEDS}/ DESTINATION ${corpus})

execute_process(
  COMMAND ${FUZZER} ${corpus}
          -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10
          -dict=${DICT} -artifact_prefix=${artifacts}/ -print_final_stats=1
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${result}); reproducers are in ${artifacts}")
endif()
