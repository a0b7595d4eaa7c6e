# packaging.cmake - documentation install rules and the Debian packages.
#
# Split like Debian's own libuv packages (libuv1 / libuv1-dev):
#   libbytes-handoff0.2   (component runtime) the shared objects
#                         libbytes_handoff.so.0.2* and libbytes_handoff_uv.so.0.2*,
#                         named after the SONAME (BH_SOVERSION, CMakeLists.txt)
#                         so two can be installed side by side
#   libbytes-handoff-dev  (component dev) headers, .so links, static archives,
#                         pkg-config and CMake files, README, guide, design,
#                         changelog, the examples' sources (with the tools/
#                         sources they share), the man pages (when doxygen
#                         was found) and, with BH_BUILD_DOCS, the HTML reference
# Each package has its own copyright file (DEP-5, from LICENSE) and
# changelog.Debian.gz in usr/share/doc/<package>. The runtime package has a
# shlibs file (dpkg-shlibdeps computes the Depends of programs linking it)
# and an `activate-noawait ldconfig` trigger instead of maintainer scripts.
# `cmake --workflow --preset deb` builds both into build/deb (cpack -G DEB);
# the ctest consumer_deb extracts them into a temporary root and builds
# consumers against it; the ctest package_lintian checks their contents and
# runs lintian (tests/release/).

set(BH_DEB_RUNTIME libbytes-handoff${BH_SOVERSION})
set(BH_DEB_DEV libbytes-handoff-dev)
set(BH_DEB_SOURCE libbytes-handoff)
set(BH_DEB_RELEASE 1)
# lintian accepts this address (a name and a syntactically valid address);
# the project has no public mail address or home page yet, so the Homepage
# field is left out rather than filled with a placeholder.
set(BH_DEB_MAINTAINER "libbytes_handoff developers <maintainers@bytes-handoff.invalid>")

# Docs of the dev package: share/doc/<package> under the deb preset
# (CMAKE_INSTALL_DOCDIR), share/doc/bytes_handoff otherwise.
install(FILES README.md docs/guide.md docs/design.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT dev)
# The changelog: CHANGELOG.md in the docs folder, except in the -dev
# package's own folder (deb preset), where Debian wants it as changelog.gz
# (below; lintian: wrong-name-for-upstream-changelog).
if(NOT CMAKE_INSTALL_DOCDIR STREQUAL "${CMAKE_INSTALL_DATAROOTDIR}/doc/${BH_DEB_DEV}")
    install(FILES CHANGELOG.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT dev)
endif()
# The license text for `cmake --install`; the packages carry it as their
# copyright files instead (component "license" is not packaged: lintian
# flags a second license file).
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT license)
# The examples build on their own against the installed libraries; the
# sources of bh_tools they share ship next to them (examples/CMakeLists.txt).
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT dev)
install(DIRECTORY tools/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/tools COMPONENT dev)

# ---- Debian metadata files, generated at configure time ------------------
set(BH_DEB_DIR ${PROJECT_BINARY_DIR}/debian)
# Made from these at configure time: an edit re-runs the configure step.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/CHANGELOG.md ${PROJECT_SOURCE_DIR}/LICENSE)
# copyright: machine-readable (DEP-5), the license text from LICENSE.
file(READ ${PROJECT_SOURCE_DIR}/LICENSE bh_license)
string(REGEX REPLACE "^.*(Permission is hereby)" "\\1" bh_license "${bh_license}")
string(STRIP "${bh_license}" bh_license)
string(REGEX REPLACE "\n\n" "\n.\n" bh_license "${bh_license}")
string(REGEX REPLACE "\n" "\n " BH_DEB_LICENSE_TEXT " ${bh_license}")
configure_file(cmake/copyright.in ${BH_DEB_DIR}/copyright @ONLY)
# changelog.Debian.gz: one entry dated like the release in CHANGELOG.md.
file(STRINGS ${PROJECT_SOURCE_DIR}/CHANGELOG.md bh_release_line
     REGEX "^## \\[?${PROJECT_VERSION}\\]? - [0-9-]+$" LIMIT_COUNT 1)
string(REGEX MATCH "[0-9]+-[0-9]+-[0-9]+$" bh_release_date "${bh_release_line}")
if(NOT bh_release_date)
    set(bh_release_date "1970-01-01")  # not released yet
endif()
execute_process(COMMAND date -u -R -d "${bh_release_date} 00:00:00"
                OUTPUT_VARIABLE BH_DEB_DATE OUTPUT_STRIP_TRAILING_WHITESPACE)
configure_file(cmake/changelog.Debian.in ${BH_DEB_DIR}/changelog.Debian @ONLY)
execute_process(COMMAND gzip -9nc ${BH_DEB_DIR}/changelog.Debian
                OUTPUT_FILE ${BH_DEB_DIR}/changelog.Debian.gz)
# changelog.gz: the upstream changelog for the -dev package.
execute_process(COMMAND gzip -9nc ${PROJECT_SOURCE_DIR}/CHANGELOG.md
                OUTPUT_FILE ${BH_DEB_DIR}/changelog.gz)
install(FILES ${BH_DEB_DIR}/changelog.gz
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${BH_DEB_DEV} COMPONENT dev)
# shlibs: both libraries come from the runtime package of this version on.
file(WRITE ${BH_DEB_DIR}/shlibs
     "libbytes_handoff ${BH_SOVERSION} ${BH_DEB_RUNTIME} (>= ${PROJECT_VERSION})\n"
     "libbytes_handoff_uv ${BH_SOVERSION} ${BH_DEB_RUNTIME} (>= ${PROJECT_VERSION})\n")
# triggers: dpkg runs ldconfig once after the transaction (no postinst/postrm).
file(WRITE ${BH_DEB_DIR}/triggers "activate-noawait ldconfig\n")

foreach(pkg_comp "${BH_DEB_RUNTIME};runtime" "${BH_DEB_DEV};dev")
    list(GET pkg_comp 0 pkg)
    list(GET pkg_comp 1 comp)
    install(FILES ${BH_DEB_DIR}/copyright ${BH_DEB_DIR}/changelog.Debian.gz
            DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg} COMPONENT ${comp})
endforeach()

# ---- CPack DEB ------------------------------------------------------------
set(CPACK_PACKAGE_NAME ${BH_DEB_SOURCE})
set(CPACK_PACKAGE_VENDOR "libbytes_handoff")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
# Each component's description starts with its own summary line. CPack
# prepends CPACK_PACKAGE_DESCRIPTION_SUMMARY to it unless that is CPack's
# default text, so it is set to exactly that default here.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
set(CPACK_PACKAGE_CONTACT "${BH_DEB_MAINTAINER}")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${BH_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_SOURCE ${BH_DEB_SOURCE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${BH_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Multi-Arch: same only when the libraries go to the multiarch folder
# (lib/<triplet>, as GNUInstallDirs picks for the /usr prefix of the deb
# preset); a plain lib/ would clash between architectures.
set(bh_multiarch_same OFF)
if(CMAKE_LIBRARY_ARCHITECTURE AND CMAKE_INSTALL_LIBDIR MATCHES "/${CMAKE_LIBRARY_ARCHITECTURE}$")
    set(bh_multiarch_same ON)
endif()

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ${BH_DEB_RUNTIME})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${BH_DEB_DIR}/shlibs ${BH_DEB_DIR}/triggers)
# CPack adds postinst/postrm running ldconfig (the trigger above replaces
# them) and cannot write Multi-Arch: cmake/deb-fixup.cmake mends both.
set(CPACK_POST_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/deb-fixup.cmake)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
    "zero-copy byte buffers for libuv programs - shared libraries
libbytes_handoff hands bytes read from a socket to other code as
reference-counted slices without copying them, and writes owned slices
through a bounded queue with backpressure.

This package holds the shared libraries: the loop-free core
(libbytes_handoff: byte slices, buffers, the write queue core) and the
libuv adapter (libbytes_handoff_uv: reader, write queue, tunnel).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME ${BH_DEB_DEV})
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "${BH_DEB_RUNTIME} (= ${PROJECT_VERSION}-${BH_DEB_RELEASE}), libuv1-dev")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "zero-copy byte buffers for libuv programs - development files
libbytes_handoff hands bytes read from a socket to other code as
reference-counted slices without copying them, and writes owned slices
through a bounded queue with backpressure.

This package holds what programs are built with: the headers, the static
libraries, the pkg-config and CMake package files, one man page per
function and type, the user guide, the design notes, the changelog and the
examples' sources.")
if(bh_multiarch_same)
    set(CPACK_DEBIAN_RUNTIME_PACKAGE_MULTIARCH same)
    set(CPACK_DEBIAN_DEV_PACKAGE_MULTIARCH same)
endif()

include(CPack)
