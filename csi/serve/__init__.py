"""The identify service (tools.serve_identify): csi.identify's Identifier over HTTP — a JSON
endpoint and one page to drop an audio file on (docs/serve.md).

options.py  ServeOptions: upload limits (bytes, seconds), topk
upload.py   the request body: raw or multipart, limits, audio check; UploadError (4xx, reason)
service.py  IdentifyService: one Identifier under a lock, answers, plots, health
plot.py     the best match's alignment plot (chunk similarities, best pair, time map)
page.py     the page's HTML and script
app.py      the HTTP handler and server (stdlib ThreadingHTTPServer)
"""
from csi.serve.app import IdentifyServer, make_server, serve_in_thread
from csi.serve.options import ServeOptions
from csi.serve.service import IdentifyService, ServingIdentifier
from csi.serve.upload import Upload, UploadError

__all__ = ["IdentifyServer", "IdentifyService", "ServeOptions", "ServingIdentifier", "Upload", "UploadError",
           "make_server", "serve_in_thread"]
