"""The test credentials the mock providers accept, in one place: the mocks check them, and
`aimm mock-provider --help` and docs/providers.md show them (a test keeps the three in step).

Light on purpose (no imports): the CLI reads it to build its help text.
"""

from __future__ import annotations

# Bedrock (SigV4): the mock recomputes each signature with one of these pairs, as AWS would.
ACCESS_KEY_ID = "AKIDEXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
# A temporary-credentials pair, valid only with its session token (X-Amz-Security-Token).
SESSION_ACCESS_KEY_ID = "ASIAEXAMPLESESSION"
SESSION_SECRET_ACCESS_KEY = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
SESSION_TOKEN = "mock-session-token"

HELP = f"""\
test credentials (--require-auth makes the API-key formats insist on one):
  openai, anthropic, cohere, gemini, azure: any non-empty API key in the provider's own header
    (Azure always checks it, and also takes an Entra bearer token).
  bedrock: SigV4 with access key id {ACCESS_KEY_ID}
    and secret access key {SECRET_ACCESS_KEY}
    (always checked); or the session pair {SESSION_ACCESS_KEY_ID} /
    {SESSION_SECRET_ACCESS_KEY} with session token {SESSION_TOKEN}.
  vertex: any service-account key whose token_uri is http://HOST:PORT/token (always checked); its
    JWT's signature is verified only for keys registered with POST /_mock/vertex {{"keys": {{kid: PEM}}}}.
"""
