# deb-drop-ldconfig.cmake - CPack post-build script (CPACK_POST_BUILD_SCRIPTS,
# cmake/packaging.cmake). CPack's DEB generator (CMake 3.25) gives every
# package with a shared library under /usr/lib a postinst and a postrm that
# run ldconfig, with no switch to turn that off; lintian flags them
# (maintscript-calls-ldconfig). The runtime package's `activate-noawait
# ldconfig` trigger already has dpkg run ldconfig once per transaction, so
# this script takes those two generated scripts out of each package (only
# when they are exactly CPack's ldconfig stanza) and rebuilds it with
# dpkg-deb, files owned by root.
find_program(BH_DPKG_DEB dpkg-deb REQUIRED)
foreach(deb IN LISTS CPACK_PACKAGE_FILES)
    if(NOT deb MATCHES "\\.deb$")
        continue()
    endif()
    set(dir ${deb}.unpacked)
    file(REMOVE_RECURSE ${dir})
    execute_process(COMMAND ${BH_DPKG_DEB} -R ${deb} ${dir} COMMAND_ERROR_IS_FATAL ANY)
    set(changed FALSE)
    foreach(script postinst postrm)
        set(path ${dir}/DEBIAN/${script})
        if(EXISTS ${path})
            file(READ ${path} text)
            string(REGEX REPLACE "[ \t\n]+" " " flat "${text}")
            if(flat MATCHES "^#!/bin/sh set -e if \\[ \"\\$1\" = \"(configure|remove)\" \\]; then ldconfig fi ?$")
                file(REMOVE ${path})
                set(changed TRUE)
            else()
                message(FATAL_ERROR "${deb}: unexpected ${script}:\n${text}")
            endif()
        endif()
    endforeach()
    if(changed)
        execute_process(COMMAND ${BH_DPKG_DEB} --root-owner-group -Zxz -b ${dir} ${deb}
                        OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
    endif()
    file(REMOVE_RECURSE ${dir})
endforeach()
