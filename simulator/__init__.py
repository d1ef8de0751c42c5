"""A simulated vLLM fleet (GPUs, engines, load) for demos and tests without a GPU.

It is a stand-in for the real serving stack, never part of it: everything it emits carries
``inferledger.simulated=true`` so the label survives to the dashboard and the report.
"""

SIMULATED_RESOURCE = {"inferledger.simulated": "true"}
