# bytes_handoffLibuv.cmake - locates libuv for the adapter library, in this
# project's build and in the installed package config (installed next to
# bytes_handoffConfig.cmake), without the pkg-config program.
#
# _bytes_handoff_find_libuv(MIN_VERSION FOUND_VAR MESSAGE_VAR VERSION_VAR
#                           [LIBRARY_VAR INCLUDE_VAR])
# creates the INTERFACE IMPORTED target bytes_handoff::libuv (the name the
# exported adapter targets link) unless it exists, and sets only the named
# variables in the caller's scope: FOUND_VAR TRUE/FALSE, MESSAGE_VAR the
# reason when not found, VERSION_VAR libuv's version (from <uv/version.h>,
# empty when unknown), LIBRARY_VAR / INCLUDE_VAR what a command line needs
# (a path or a generator expression). Sources, in order:
#   1. a libuv::uv target the caller already has (find_package(libuv));
#   2. find_path(uv.h) + find_library(uv) without cache entries, which
#      follow CMAKE_PREFIX_PATH and the system paths (Debian's libuv1-dev);
#   3. libuv's own CMake package (libuv >= 1.45 installs libuvConfig.cmake;
#      tried last because find_package() leaves libuv_DIR in the cache).
# Everything else stays local to the function. Needs CMake 3.21 (NO_CACHE).
function(_bytes_handoff_find_libuv min_version found_var message_var version_var)
    set(library_var "${ARGV4}")
    set(include_var "${ARGV5}")
    set(found FALSE)
    set(version "")
    # -NOTFOUND, not unset: a cache entry of the same name must not stand in
    # for a result (find_* skip the search for a set variable).
    set(_bh_uv_library _bh_uv_library-NOTFOUND)
    set(_bh_uv_include_dir _bh_uv_include_dir-NOTFOUND)
    set(link_item "")
    set(hint "bytes_handoff: the uv component needs libuv >= ${min_version} (Debian: libuv1-dev)")

    if(TARGET bytes_handoff::libuv)
        set(found TRUE)
        get_target_property(version bytes_handoff::libuv _BYTES_HANDOFF_LIBUV_VERSION)
        if(NOT version)
            set(version "")
        endif()
    else()
        if(NOT TARGET libuv::uv)
            find_path(_bh_uv_include_dir uv.h NO_CACHE)
            find_library(_bh_uv_library NAMES uv libuv NO_CACHE)
            if(_bh_uv_include_dir AND _bh_uv_library)
                set(link_item "${_bh_uv_library}")
            else()
                set(_bh_uv_library "")
                set(_bh_uv_include_dir "")
                find_package(libuv CONFIG QUIET)
            endif()
        endif()
        if(NOT link_item AND TARGET libuv::uv)
            set(link_item libuv::uv)
            get_target_property(_bh_uv_include_dir libuv::uv INTERFACE_INCLUDE_DIRECTORIES)
            set(_bh_uv_library "$<TARGET_LINKER_FILE:libuv::uv>")
        endif()
        if(link_item)
            foreach(dir IN LISTS _bh_uv_include_dir)
                if(EXISTS "${dir}/uv/version.h")
                    file(STRINGS "${dir}/uv/version.h" lines
                         REGEX "^#define UV_VERSION_(MAJOR|MINOR|PATCH) +[0-9]+")
                    set(parts)
                    foreach(part MAJOR MINOR PATCH)
                        string(REGEX MATCH "UV_VERSION_${part} +([0-9]+)" unused "${lines}")
                        list(APPEND parts "${CMAKE_MATCH_1}")
                    endforeach()
                    list(JOIN parts "." version)
                    break()
                endif()
            endforeach()
            if(version AND version VERSION_LESS min_version)
                string(APPEND hint ", found ${version} (${_bh_uv_library})")
            else()
                set(found TRUE)
                add_library(bytes_handoff::libuv INTERFACE IMPORTED)
                set_target_properties(bytes_handoff::libuv PROPERTIES
                    INTERFACE_LINK_LIBRARIES "${link_item}"
                    _BYTES_HANDOFF_LIBUV_VERSION "${version}")
                if(NOT link_item STREQUAL "libuv::uv")
                    set_target_properties(bytes_handoff::libuv PROPERTIES
                        INTERFACE_INCLUDE_DIRECTORIES "${_bh_uv_include_dir}")
                endif()
            endif()
        else()
            string(APPEND hint ": neither <uv.h> and the library nor libuv's CMake package "
                   "was found. Install it, or add its prefix to CMAKE_PREFIX_PATH.")
        endif()
    endif()

    set(${found_var} ${found} PARENT_SCOPE)
    if(found)
        set(${message_var} "" PARENT_SCOPE)
    else()
        set(${message_var} "${hint}" PARENT_SCOPE)
    endif()
    set(${version_var} "${version}" PARENT_SCOPE)
    if(library_var)
        set(${library_var} "${_bh_uv_library}" PARENT_SCOPE)
    endif()
    if(include_var)
        set(${include_var} "${_bh_uv_include_dir}" PARENT_SCOPE)
    endif()
endfunction()
