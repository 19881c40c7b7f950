"""Scalar deep linear networks at the edge of stability: gradient-flow solutions and fractal basins."""
