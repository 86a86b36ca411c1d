/* A stand-in for Windows' bcryptprimitives.dll, for running the Windows test binaries under
 * Wine 8, which lacks it. Rust 1.78+ std imports ProcessPrng from it; this forwards to
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. Built by .ci/cross with mingw. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
