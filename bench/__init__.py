"""stsvend's benchmarks: `python -m bench` runs them all, `python -m bench NAME` one of them.

Every figure is measured against its closest baseline in the same run, as a ratio, with the two
sides interleaved so that a noisy machine slows both alike. Kept import-free: cold-start child
processes import this package.
"""
