# Shared helpers of the set-up and test scripts (sourced, not run).

# Installs the Debian packages given that are not installed yet. A package installed from
# elsewhere (qemu-utils from backports, say) can make apt remove it or refuse the others:
# then all of them are taken from the release, and every one must be installed at the end.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || true
  missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local release pinned=()
  release=$(. /etc/os-release && echo "$VERSION_CODENAME")
  for p in "$@"; do pinned+=("$p/$release"); done
  echo "installing the $release versions: ${pinned[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "${pinned[@]}" >/dev/null
}

# FerroStack is edition 2024: it needs cargo 1.85 or newer (rustup's stable).
require_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust >= 1.85 with rustup (https://rustup.rs), then rerun" >&2
    exit 1
  fi
  local v
  v=$(cargo --version | awk '{print $2}')
  if [ "$(printf '%s\n1.85.0\n' "$v" | sort -V | head -1)" != "1.85.0" ]; then
    echo "cargo $v is too old: FerroStack needs >= 1.85 (rustup update stable)" >&2
    exit 1
  fi
}

# Starts PostgreSQL and MariaDB if they are not running, and makes the `ferro` test role
# on each (password ferro, allowed to create and drop its own scratch databases).
start_databases() {
  install_packages postgresql mariadb-server
  if ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || service postgresql start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  fi
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='ferro'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE ferro LOGIN PASSWORD 'ferro' CREATEDB\""
  if ! mysqladmin ping -s 2>/dev/null; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || service mariadb start
    for _ in $(seq 30); do mysqladmin ping -s 2>/dev/null && break; sleep 1; done
  fi
  mysql -uroot -e "CREATE USER IF NOT EXISTS 'ferro'@'%' IDENTIFIED BY 'ferro';
    CREATE USER IF NOT EXISTS 'ferro'@'localhost' IDENTIFIED BY 'ferro';
    GRANT ALL PRIVILEGES ON \`ferro\\_%\`.* TO 'ferro'@'%';
    GRANT ALL PRIVILEGES ON \`ferro\\_%\`.* TO 'ferro'@'localhost';"
  export FERRO_TEST_PG_URL=postgres://ferro:ferro@127.0.0.1:5432
  export FERRO_TEST_MYSQL_URL=mysql://ferro:ferro@127.0.0.1:3306
}

# Starts RabbitMQ if nothing answers on 127.0.0.1:5672 and waits until it accepts clients.
# CI containers have no systemd, so the init script, else `rabbitmq-server -detached`. The
# bus tests log in as guest/guest, which RabbitMQ allows from localhost only.
start_rabbitmq() {
  install_packages rabbitmq-server
  local port_open='(exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null'
  if ! eval "$port_open"; then
    service rabbitmq-server start >/dev/null 2>&1 || rabbitmq-server -detached || true
    for _ in $(seq 60); do eval "$port_open" && break; sleep 1; done
  fi
  timeout 120 rabbitmqctl -q await_startup >/dev/null || {
    echo "RabbitMQ did not start (see /var/log/rabbitmq/)" >&2
    return 1
  }
}
