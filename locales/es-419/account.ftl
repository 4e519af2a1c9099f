# The account pages (templates/account.html, totp_manage.html, passkeys.html).

your-account = Su cuenta
email = Correo electrónico
organisation = Organización
role = Rol
on = Activada
off = Desactivada
manage = Administrar
set-up = Configurar
passkeys = Llaves de acceso
passkey-count = { $count ->
    [0] Ninguna
    [one] Una llave de acceso
   *[other] { $count } llaves de acceso
}
manage-passkeys = Administrar llaves de acceso
emergency-open = El acceso de emergencia está abierto
emergency-open-until = hasta el { $until }.
emergency-reason-was = Motivo: { $reason }
end-emergency = Terminar ahora el acceso de emergencia
emergency-designated = En una emergencia, puede romper el vidrio. Queda registrado, se envía una alerta y se revisa.
emergency-access-link = Acceso de emergencia…
change-password = Cambiar contraseña
current-password = Contraseña actual
apps-you-allowed = Aplicaciones que autorizó
allowed-since = desde el { $since }, puede:
withdraw-access = Retirar el acceso de { $app }
where-signed-in = Dónde tiene la sesión iniciada
signed-in = Inicio de sesión
last-active = Última actividad
from = Origen
this-browser = (este navegador)
sign-out-session = Cerrar esta sesión
sign-out = Cerrar sesión

two-step-is-on = La verificación en dos pasos está activada
unused-recovery-codes = Códigos de recuperación sin usar:
new-recovery-codes = Códigos de recuperación nuevos
make-new-recovery-codes-old-stop = Generar códigos de recuperación nuevos (los anteriores dejarán de funcionar)
turn-off = Desactivar
current-code = Código actual
turn-off-two-step = Desactivar la verificación en dos pasos

your-passkeys = Sus llaves de acceso
passkeys-intro = Una llave de acceso le permite iniciar sesión sin contraseña, o sirve como segundo paso después de ella. Su dispositivo la guarda y la desbloquea con su huella digital, su rostro o su PIN; solo funciona en este sitio, así que está protegida contra el phishing.
no-passkey-yet = Aún no tiene ninguna llave de acceso.
kind = Tipo
added = Agregada
last-used = Último uso
rename = Cambiar nombre
remove = Eliminar
passkey-synced = Sincronizada entre sus dispositivos
passkey-one-device = Guardada en un solo dispositivo
new-name = Nombre nuevo
remove-named = Eliminar { $name }
passkeys-unavailable = Las llaves de acceso no están disponibles aquí para su cuenta.
add-a-passkey = Agregar una llave de acceso
passkey-name-example = Laptop del trabajo
adding-passkey-needs-javascript = Para agregar una llave de acceso se necesita JavaScript.
confirm-before-passkeys = Para agregar o eliminar una llave de acceso, primero confirme su identidad.
if-you-lose-passkeys = Si pierde sus llaves de acceso
lost-passkeys-how = { $left ->
    [one] Inicie sesión con su contraseña y su último código de recuperación, y luego agregue una llave de acceso nueva. Si no tiene un código de recuperación, pida a su administrador que restablezca su inicio de sesión.
   *[other] Inicie sesión con su contraseña y uno de sus códigos de recuperación (le quedan { $left }), y luego agregue una llave de acceso nueva. Si no tiene un código de recuperación, pida a su administrador que restablezca su inicio de sesión.
}
make-new-recovery-codes = Generar códigos de recuperación nuevos
language-and-time-zone = Idioma y zona horaria
language = Idioma
language-automatic = El de mi navegador
time-zone = Zona horaria
time-zone-automatic = La de mi organización
save = Guardar
notice-password-changed = Se cambió su contraseña.
notice-totp-removed = Se desactivó la verificación en dos pasos.
notice-emergency-opened = El acceso de emergencia está abierto. Se avisó al equipo de soporte y a su responsable de privacidad.
notice-emergency-ended = El acceso de emergencia terminó.
notice-consent-withdrawn = Se retiró el acceso de la aplicación. Volverá a pedirlo si la usa.
notice-preferences-saved = Se guardaron su idioma y su zona horaria.
current-password-wrong = Su contraseña actual no es correcta.
password-changes-locked = Demasiados intentos fallidos: los cambios de contraseña están bloqueados por ahora.
unknown-session = Sesión desconocida.
unknown-app = Aplicación desconocida.
form-stale = Este formulario venció o no se envió desde este navegador. Vuelva a cargar la página.
unknown-language = Gatehouse no está disponible en ese idioma.
unknown-time-zone = Gatehouse no reconoce esa zona horaria.
password-or-code-wrong = La contraseña o el código no son correctos.
notice-passkey-added = Se agregó su llave de acceso.
notice-passkey-removed = Se eliminó la llave de acceso.
notice-passkey-renamed = Se cambió el nombre de la llave de acceso.
passkeys-sign-in-again = Para modificar sus llaves de acceso, primero vuelva a iniciar sesión.
sign-in-first = Primero inicie sesión.
