"""ACME (RFC 8555): the public HTTP responder (wellknown.c) and the client
(acme.c) against pebble, Let's Encrypt's test CA (Debian package), run
here with its own config, a CA made with openssl for its HTTPS, and a fake
DNS that sends every name to 127.0.0.1."""
import socket

from harness import Server, free_port


def http(port, raw, timeout=5):
    """Sends raw bytes to 127.0.0.1:port; returns everything until the close."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    finally:
        s.close()


def test_responder_answers_only_acme_challenges():
    """wellknown: 404 for unknown tokens and other paths, 405 for POST, 400 for junk, 431 for a huge head"""
    port = free_port()
    s = Server(conf="ACME 1\nACMEHTTPPort %d\nACMEDirectory http://127.0.0.1:1/directory"
               % port).start()
    try:
        r = http(port, b"GET /.well-known/acme-challenge/abc HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r
        r = http(port, b"GET /.well-known/acme-challenge/../../etc/passwd HTTP/1.1\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r
        r = http(port, b"GET / HTTP/1.0\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 404 "), r
        r = http(port, b"POST /.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 405 "), r
        r = http(port, b"\x16\x03\x01junk\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 400 "), r
        r = http(port, b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 9000 + b"\r\n\r\n")
        assert r.startswith(b"HTTP/1.1 431 "), r
    finally:
        s.stop()
