// nss_evil: a glibc NSS module an image could ship with a nsswitch.conf
// naming it (`hosts: evil ...`). Loaded, it says so on stderr (the
// container's): the network tests check that a Wasm container's name
// lookup never loads it (the launcher fixes `hosts` to glibc's built-in
// services).
#include <unistd.h>

__attribute__((constructor)) static void loaded(void) {
    static const char line[] = "nss-module-loaded: native code of the image ran\n";
    (void)!write(2, line, sizeof line - 1);
}
