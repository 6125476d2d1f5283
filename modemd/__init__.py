"""modemd: dependable inbound SMS from USB GSM/LTE modems to MQTT and a time-series store."""

__version__ = "0.1.0"
