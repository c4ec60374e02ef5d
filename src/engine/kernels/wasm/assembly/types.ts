// ggml type ids (ggml.h) of the weight types with kernels: the type codes of matmul and prepareAct.
export const T_F32: i32 = 0;
export const T_F16: i32 = 1;
export const T_Q4_0: i32 = 2;
export const T_Q4_1: i32 = 3;
export const T_Q5_0: i32 = 6;
export const T_Q5_1: i32 = 7;
export const T_Q8_0: i32 = 8;
export const T_Q2_K: i32 = 10;
export const T_Q3_K: i32 = 11;
export const T_Q4_K: i32 = 12;
export const T_Q5_K: i32 = 13;
export const T_Q6_K: i32 = 14;
export const T_BF16: i32 = 30;
/**
 * F16 weights known to hold no inf/NaN (the backend scans each weight buffer once): the dot reads
 * each half's bits moved into float32 position, the value times 2^-112, against an activation
 * prepared times 2^112, which skips a multiply per value (matmul-float.ts dotF16S).
 */
export const T_F16S: i32 = 0x101;
