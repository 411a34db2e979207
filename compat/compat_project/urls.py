"""No views are served; openedx-authz's REST urls are not needed by the compatibility tier."""
urlpatterns = []
