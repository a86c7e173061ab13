"""Fakes of outside services, served over real sockets so adapters are tested end to end."""
