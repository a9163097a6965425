"""Purpose sessions (U1, U2): no video without a declared, current purpose."""
