from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django_otp.decorators import otp_required
from django_otp.views import LoginView as OTPLoginView


@login_required
def profile(request):
    # settings.LOGIN_REDIRECT_URL's default is /accounts/profile/: where LoginView sends a user.
    # JSON, so that the scenario can check whose session it is (a check reads JSON pointers).
    return JsonResponse({"username": request.user.get_username(), "authenticated": True})


@otp_required
def otp_profile(request):
    # Only a session verified by a second factor gets here; otp_required redirects the rest.
    return JsonResponse(
        {"username": request.user.get_username(), "verified": request.user.is_verified()}
    )


def health(request):
    return HttpResponse("ok")


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/profile/", profile, name="profile"),
    path("otp/login/", OTPLoginView.as_view(template_name="otp/login.html"), name="otp-login"),
    path("otp/profile/", otp_profile, name="otp-profile"),
    path("health", health),
]
