"""Message sources other than the modem drivers: SMPP binds to an SMS aggregator."""
