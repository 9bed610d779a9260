"""minstack's example plugin: Barbican, OpenStack's key manager, from its PyPI release.

What minstack needs to know about Barbican, in the catalogue's terms
(minstack/catalogue.py): its DevStack service name, its database, its Keystone
entry (key-manager) and its API, served by uWSGI on 9311.  The phase that
installs it is phases/barbican.py; the venv gets requirements.txt.

Enable it in localrc (a path is used as it is):

    enable_plugin barbican /path/to/minstack/plugins/barbican
"""
from minstack.catalogue import Api, CatalogEntry, declare

PROJECTS = (
    declare(name="barbican", phase="barbican", distribution="barbican",
            services={"barbican-svc": "Barbican key manager API"}, meta=("barbican",),
            # barbican.wsgi.api reads /etc/barbican/barbican.conf (oslo.config's default place for
            # project barbican) and the paste file /etc/barbican/barbican-api-paste.ini; no env tells it
            # another: so no BARBICAN_CONF setting either
            config_files={"BARBICAN_CONF": "/etc/barbican/barbican.conf"}, databases=("barbican",),
            catalog=CatalogEntry("key-manager", "barbican", "Barbican Key Management Service", api="barbican-api"),
            apis=(Api("barbican-api", "barbican-svc", "barbican.wsgi.api", 9311),),
            in_default=("barbican-svc",)),
)
