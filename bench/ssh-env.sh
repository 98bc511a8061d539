# Shared set-up of the SSH benchmarks (sourced by bench/ssh.sh and bench/ssh-ab.sh, not run):
# the login on the target, keys, sshd configurations trusting the Gatehouse user CA, the policy
# that gives the bench identity the target, and the OpenSSH options every path uses.
# Expects W (a scratch directory) and the array pids (processes to stop at the end).

# The login on the target: a dedicated user with /bin/sh, so no shell start-up files (pyenv and
# the like in root's .bashrc) are timed, and killed idle sessions leave nothing behind.
LOGIN=ghbench
id "$LOGIN" >/dev/null 2>&1 || useradd --system --shell /bin/sh --home-dir /tmp --no-create-home "$LOGIN"
usermod -d /tmp -p "*" "$LOGIN"   # no password, but not locked (sshd refuses locked accounts)
mkdir -p /run/sshd

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The engineer's key (also in authorized_keys, for the direct path) and a host key per sshd.
ssh-keygen -q -t ed25519 -N '' -C bench -f "$W/user"
cp "$W/user.pub" "$W/authorized_keys"
chmod 755 "$W"; chmod 644 "$W/authorized_keys"   # sshd reads it as the login user

# start_sshd NAME PORT: an sshd on 127.0.0.1:PORT trusting the CA keys in $W/ca.pub.
start_sshd() {
  ssh-keygen -q -t ed25519 -N '' -C "$1" -f "$W/$1_host"
  cat > "$W/$1.conf" <<EOC
Port $2
ListenAddress 127.0.0.1
HostKey $W/$1_host
TrustedUserCAKeys $W/ca.pub
AuthorizedKeysFile $W/authorized_keys
PidFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
MaxStartups 2000:30:4000
MaxSessions 100
Subsystem sftp internal-sftp
EOC
  /usr/sbin/sshd -D -e -f "$W/$1.conf" 2>"$W/$1.log" & pids+=($!)
}

# start_relay PORT TARGET_PORT: a plain TCP relay (socat, 128 KiB buffers) on 127.0.0.1:PORT to
# the target: a third process that only copies the encrypted bytes across, no SSH of its own. It
# shows what putting any process in the middle costs on this machine.
start_relay() {
  socat -b 131072 "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$2" 2>"$W/relay.log" & pids+=($!)
}

# bench_policy PORT: identity "bench" may reach target "db" (the sshd named target on PORT).
bench_policy() {
  cat <<EOC
[[identities]]
username = "bench"
ssh_keys = ["$(cat "$W/user.pub")"]

[[targets]]
name = "db"
kind = "ssh"
address = "127.0.0.1:$1"
host_key = "$(cut -d' ' -f1,2 "$W/target_host.pub")"

[[roles]]
name = "db-root"
targets = { names = ["db"] }
logins = ["$LOGIN"]

[[assignments]]
role = "db-root"
to = "bench"
kind = "standing"
EOC
}

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# Same cipher and key exchange everywhere: OpenSSH 9.2 otherwise picks sntrup761x25519, whose
# key generation alone costs ~190 ms per connection on this CPU (russh does not offer it).
O=(-c aes128-gcm@openssh.com -o KexAlgorithms=curve25519-sha256 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes
   -o IdentitiesOnly=yes -o LogLevel=ERROR -i "$W/user")
