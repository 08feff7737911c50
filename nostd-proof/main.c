/* Links the no_std static library into a C program and runs the proof. */
#include <stdio.h>
#include <stdint.h>
uint32_t vigil_nostd_proof(void);
int main(void) { uint32_t n = vigil_nostd_proof(); printf("delivered %u spans\n", n); return n == 3 ? 0 : 1; }
