/* Exits with the status given, through exit(3) (on_exit handlers run). */
#include <stdlib.h>
int main(int argc, char **argv) { return argc > 1 ? atoi(argv[1]) : 0; }
