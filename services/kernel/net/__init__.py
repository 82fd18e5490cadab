"""Sockets: AF_UNIX stream, datagram and seqpacket sockets, their names and
what their messages carry."""
