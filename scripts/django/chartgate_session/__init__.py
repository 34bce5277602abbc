"""chartgate_session -- a Django app that lets the users of a Django site into chartgate.

At login it writes the gateway's session object under the Redis key <prefix><session key>
(the value of Django's own `sessionid` cookie), at logout it deletes it again; see README.md
next to this package. Modules: apps (wiring and system checks), store (the Redis side),
instruments (who may see what), signals (login and logout), middleware (later key rotations).
"""
