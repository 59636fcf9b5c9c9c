"""gunicorn's configuration: `gunicorn -c config/gunicorn.conf.py config.wsgi:application`.

Read from the same environment as the settings (deploy/env.example lists it), with the settings'
own typed helpers, so a bad number stops start-up with the variable's name.
"""

import multiprocessing

from config.settings import env_int, env_str

# Behind nginx on the same machine; `0.0.0.0:$PORT` where the platform routes to the process.
bind = env_str("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: a request is one short transaction (the queue's claim, a submit), and the
# image uploads are read whole anyway. 2 per core, +1, as gunicorn's docs suggest.
workers = env_int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
# An import of many rows or a 50 MiB upload may take a while; anything longer is a stuck worker.
timeout = env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (jittered so they do not all restart at once): bounds slow leaks.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: a worker blocked on a slow disk is not taken for a dead one.
worker_tmp_dir = "/dev/shm"
# X-Forwarded-* are believed only from these addresses (the proxy in front); Django's own
# SECURE_PROXY_SSL_HEADER decides about https.
forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs to stdout/stderr (journald or the platform collects them). The access log adds the time
# taken (%(M)s, milliseconds) and the client address the proxy saw ({x-forwarded-for}i).
accesslog = "-"
errorlog = "-"
loglevel = env_str("LOG_LEVEL", "INFO").lower()
access_log_format = '%(h)s "%({x-forwarded-for}i)s" %(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(f)s" "%(a)s"'
# No run-time control socket (it would be created under $HOME, which systemd hides from the
# service): reload with SIGHUP, as the unit's ExecReload does.
control_socket_disable = True
