#!/usr/bin/env bash
# Vagrant's provisioner (see Vagrantfile): stack the VM the way anyone stacks a host.
# Runs as the vagrant user; ./stack.py re-executes itself with sudo.  Nothing else belongs
# here: what the cloud needs goes into minstack, so the VM and the gate run the same code.
# Usage: provision.sh REPO   (the synced repository in the VM)
set -euo pipefail
cd "$1"

# stack.py needs only python3 (the box may lack even that); it installs everything else.
if ! command -v python3 >/dev/null; then
    sudo DEBIAN_FRONTEND=noninteractive sh -c \
        'apt-get -o DPkg::Lock::Timeout=600 update -q && apt-get -o DPkg::Lock::Timeout=600 install -y -q python3'
fi

# Later commands in the VM (./stack.py status, ./unstack.py, ./stack.py) use the same settings.
[ -e localrc ] || ln -s files/vagrant/localrc localrc

./stack.py --config files/vagrant/localrc

password=$(sed -n 's/^ADMIN_PASSWORD=//p' files/vagrant/localrc)
cat <<EOF

minstack is up.  From this computer:
  Horizon   http://localhost:${MINSTACK_HORIZON_PORT:-8080}/dashboard
            user demo (or admin), password ${password}
  consoles  through http://localhost:${MINSTACK_NOVNC_PORT:-6080} (Horizon's Console tab)
  CLI       vagrant ssh, then:  cd minstack && source openrc demo demo && openstack server list
The workshop steps: doc/workshop.md
EOF
