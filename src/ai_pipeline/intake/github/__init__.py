"""The GitHub App mode's intake: webhook signatures and what each delivery means.

Pure: no I/O. ``signature`` checks ``X-Hub-Signature-256``; ``payloads`` reads the parts of
GitHub's webhook payloads the service uses; ``decisions`` says what a delivery asks for;
``reports`` turns an issue into the report the triage agent reads.
"""
