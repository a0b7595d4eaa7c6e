/* driver_idle.h - the stream driver's idle mode (driver_idle.c): N idle
 * connections, the proxy's RSS before, with them idle, and after they closed. */
#ifndef BH_HARNESS_DRIVER_IDLE_H
#define BH_HARNESS_DRIVER_IDLE_H

/* Runs the idle mode with the driver's command line (it holds --idle).
 * Returns the exit status. */
int driver_idle_main(int argc, char **argv);

#endif
