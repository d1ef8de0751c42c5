"""The commands on top of the house: the CLI (``inferledger …``) and the demo supervisor.
They compose the roles (collector, agents, analytics, dashboard, simulator) over the
foundation (``inferledger/``); nothing below imports them."""
