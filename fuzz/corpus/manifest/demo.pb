
atlas-demoAtlas Demo Pack"1.0.0*D(820a930cdf9fb69fcd72e90daf51974f0836b9af©ƒŠØ*examples/demo-pack20.1.0:1.21.1B
0.16.9J@
config/atlas-demo.jsonU ıŒ“ÍÓ®`‰·ï“kƒ¿b:mr5S´]ûJ(’7Ü 0J@
config/client/hud.toml3 t‹§\-"ö?\¹‘T
2TÌtîÏ…Œ7/ÿ 0Jh
>datapacks/atlas-demo/data/atlas_demo/function/hello.mcfunction' ŸÇh´æÚ•û<é(¶âïx>J1îÊpKJÎV›}3[Ë 0JJ
 datapacks/atlas-demo/pack.mcmetaH [ó/óeÎğÍ…ÕÌÒ'›xı©Ìé¾f­FÏÀÌ 0JH
defaultconfigs/difficulty.toml ½Â¾äĞt&ÓØĞëš.´#4
Brß,½‡°=ã¢92 0JK
 kubejs/server_scripts/welcome.js– xòÑ³†TÿÊ´>½¬ $ÎefĞ¢pN|òÇÂ¬è²Ñ|j 0J5
options.txt <\>şh" ,ÔtLöÏÀ¿±%‚vŸ`^ø¥Ú	QP 0J;
server-icon.txt# Æ¬Ó/>î? íåF4dÂUØAgá±ä7"9Ğ÷+ 0XJ;
server.propertiesI “?ê×Äb8ß¸Ó0ójŸGIí`Œ&ÄB³x®Räêà? 0J4
start.sh{ #‹ª¯äI­©è¼r
®0³É¢¾v^?N${c\aò 08