"""The exception classes of edge-tts 7.x (edge_tts/exceptions.py)."""


class EdgeTTSException(Exception):
    """Base exception for the edge-tts package."""


class UnknownResponse(EdgeTTSException):
    """Raised when an unknown response is received from the server."""


class UnexpectedResponse(EdgeTTSException):
    """Raised when an unexpected response is received from the server."""


class NoAudioReceived(EdgeTTSException):
    """Raised when no audio is received from the server."""


class WebSocketError(EdgeTTSException):
    """Raised when a WebSocket error occurs."""
