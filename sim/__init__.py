"""smarketing-lab funnel simulator: a SimPy model of lead arrivals, SDR queues on
business hours, response delays, delay-dependent conversion, sales acceptance and
recycling, and pipeline to closed-won."""
