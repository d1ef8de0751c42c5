"""The published results as every surface reads them: a slice (``filters``), every headline
figure defined once (``kpis``), and what was published (``published``). ``analytics
summary``, the dashboard, the weekly report and the FOCUS export all read through here, so
the same question gets the same answer to the cent everywhere."""
