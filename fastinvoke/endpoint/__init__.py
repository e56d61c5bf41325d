"""The ZeroMQ endpoint: Lambda's Invoke over a ROUTER socket, for harnesses that want
the lowest latency (``fastinvoke serve --zmq tcp://127.0.0.1:3002``)."""
