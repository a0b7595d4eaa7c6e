# check_demo.cmake - runs `content_routing_rig demo ARGS...` for ctest and passes
# only when it exits 0 AND its summary reports every checksum OK (a
# PASS_REGULAR_EXPRESSION alone would ignore the exit status).
#   cmake -DEXE=path/to/content_routing_rig "-DARGS=--write-size;7" -P check_demo.cmake
execute_process(COMMAND ${EXE} demo ${ARGS}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(err)
    message("stderr:\n${err}")
endif()
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "content_routing_rig demo ${ARGS} exited with ${rc}")
endif()
if(NOT out MATCHES "RESULT: all checksums OK")
    message(FATAL_ERROR "content_routing_rig demo ${ARGS}: summary does not report all checksums OK")
endif()
