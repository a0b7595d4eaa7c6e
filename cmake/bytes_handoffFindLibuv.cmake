# bytes_handoffFindLibuv.cmake - defines the imported target
# bytes_handoff::libuv (libuv for the adapter library), used by this
# project's build and by the installed package config alike.
#
# Where it looks, first hit wins, without the pkg-config program:
#   1. a target libuv::uv the caller already has;
#   2. libuv's own CMake package (libuv >= 1.45 installs libuvConfig.cmake);
#   3. find_path(uv.h) and find_library(uv), honouring CMAKE_PREFIX_PATH and
#      bytes_handoff_LIBUV_ROOT.
# Results: bytes_handoff_LIBUV_FOUND (TRUE/FALSE) and, for case 3, the cache
# entries bytes_handoff_LIBUV_INCLUDE_DIR and bytes_handoff_LIBUV_LIBRARY
# (set them to point at another libuv). Everything else it computes stays in
# a function's scope, so including it leaves the caller's variables alone.
function(_bytes_handoff_find_libuv)
    if(TARGET bytes_handoff::libuv)
        set(bytes_handoff_LIBUV_FOUND TRUE PARENT_SCOPE)
        return()
    endif()
    if(NOT TARGET libuv::uv)
        find_package(libuv CONFIG QUIET)
    endif()
    if(TARGET libuv::uv)
        add_library(bytes_handoff::libuv INTERFACE IMPORTED GLOBAL)
        set_target_properties(bytes_handoff::libuv PROPERTIES INTERFACE_LINK_LIBRARIES libuv::uv)
        set(bytes_handoff_LIBUV_FOUND TRUE PARENT_SCOPE)
        return()
    endif()
    find_path(bytes_handoff_LIBUV_INCLUDE_DIR uv.h
              HINTS ${bytes_handoff_LIBUV_ROOT} PATH_SUFFIXES include
              DOC "directory holding libuv's uv.h")
    find_library(bytes_handoff_LIBUV_LIBRARY NAMES uv libuv
                 HINTS ${bytes_handoff_LIBUV_ROOT} PATH_SUFFIXES lib
                 DOC "libuv's library")
    if(bytes_handoff_LIBUV_INCLUDE_DIR AND bytes_handoff_LIBUV_LIBRARY)
        add_library(bytes_handoff::libuv UNKNOWN IMPORTED GLOBAL)
        set_target_properties(bytes_handoff::libuv PROPERTIES
            IMPORTED_LOCATION "${bytes_handoff_LIBUV_LIBRARY}"
            INTERFACE_INCLUDE_DIRECTORIES "${bytes_handoff_LIBUV_INCLUDE_DIR}")
        set(bytes_handoff_LIBUV_FOUND TRUE PARENT_SCOPE)
    else()
        set(bytes_handoff_LIBUV_FOUND FALSE PARENT_SCOPE)
    endif()
endfunction()
_bytes_handoff_find_libuv()
