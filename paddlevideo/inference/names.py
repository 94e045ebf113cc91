"""Names shared by the exporter and the engines that run what it writes."""

# the exported model's inputs: ``slow_input [N,3,T/alpha,S,S]``, ``fast_input [N,3,T,S,S]``
INPUT_NAMES = ("slow_input", "fast_input")
